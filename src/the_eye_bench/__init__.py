"""`the-eye bench`: measure The Eye over real HTTP against the ceiling of the machine.

A tool shipped beside the product: nothing in `the_eye` imports it, and `the-eye bench`
loads it only when it runs. It needs the `bench` extra (`pip install 'the-eye[bench]'`)
and wrk on PATH.
"""

from the_eye_bench.command import bench

__all__ = ["bench"]
