"""The "online shopping" API of Logto's machine-to-machine guide, protected by logto-guard."""
