"""Fault injection and fuzzing: a misbehaving loopback provider, hypothesis over tokens."""
