"""Helpers behind `make image` (mk/image.mk) and the ci/ pipeline."""
