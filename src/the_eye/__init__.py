"""The Eye: self-hosted collection of user-behaviour events."""

__version__ = "0.1.0"
