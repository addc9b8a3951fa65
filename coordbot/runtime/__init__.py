"""The composition root: builds the conversation, the reminder engine, the channels and the web app."""

from coordbot.runtime.app import Runtime, build_channels, make_runtime, serve

__all__ = ["Runtime", "build_channels", "make_runtime", "serve"]
