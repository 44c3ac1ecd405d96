"""Test images for the container tests: built once per session from PIER_BASE_IMAGE."""
