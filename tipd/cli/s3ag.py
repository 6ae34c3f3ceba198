"""PLACEHOLDER for `tipctl s3ag`: being built; replace this whole module."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("s3ag", help="(not built yet)")
    p.set_defaults(run=lambda args: 2)
