"""Tests that build every distribution and install one into a fresh virtual environment."""
