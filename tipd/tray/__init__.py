"""`tipctl tray`: a status icon. `model` and `actions` hold the logic and import no GUI toolkit (they are
tested without a display); `icon` draws with Pillow; `app` wires them to pystray."""
