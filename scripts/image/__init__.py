"""Helpers behind `make image` (mk/image.mk)."""
