"""Helpers shared by the test suites (contract, integration): nothing here depends on pytest."""
