"""Test-building helpers: tiny but real container images and the on-disk layouts that hold them."""
