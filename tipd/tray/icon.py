"""The tray icon, drawn with Pillow: a disc in the colour of the worst state (a ring while tipd is not running)."""
from __future__ import annotations

from PIL import Image, ImageDraw

from .model import View

SIZE = 64


def draw(view: View, size: int = SIZE) -> Image.Image:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    pad = size // 10
    box = (pad, pad, size - 1 - pad, size - 1 - pad)
    if view.running:
        d.ellipse(box, fill=(*view.colour, 255))
    else:
        d.ellipse(box, outline=(*view.colour, 255), width=max(2, size // 8))
    return img
