"""`tipctl`: thin commands over the library and the daemon's control socket."""
