"""The fleet domain: the aircraft registry of the carriers flying from New York."""
