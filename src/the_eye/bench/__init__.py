"""`the-eye bench`: measure The Eye over real HTTP against the ceiling of the machine."""

from the_eye.bench.command import bench

__all__ = ["bench"]
