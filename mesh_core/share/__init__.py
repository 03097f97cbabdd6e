"""Products anyone can read: a Delta Sharing server over the mesh's output ports, its recipients and tokens."""
