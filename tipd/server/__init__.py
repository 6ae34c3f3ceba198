"""The daemon's listeners: the loopback credential endpoint and the per-user control socket."""
