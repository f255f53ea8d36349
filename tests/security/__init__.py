"""Security tests: the attack catalogue through the real ASGI stack, and log hygiene."""
