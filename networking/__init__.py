"""Networking: profiles and the people directory, the match queue that pairs people for short
video meetings, and the lounge tables."""
