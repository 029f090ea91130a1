"""Engine.IO v4, sans-I/O: its packets, the handshake's refusals and a session's states.

What python-engineio is to python-socketio: the layer below Socket.IO, which knows nothing of
Socket.IO, of the transports that carry it, or of Django, Channels and Twisted (an
import-linter contract says so). Spec: https://github.com/socketio/engine.io-protocol (v4).
"""
