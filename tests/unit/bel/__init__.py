"""Build Event Log store tests."""
