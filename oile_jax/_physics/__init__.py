"""The physics: one-particle states in n flavours, the encounter, time
profiles, the physical system."""
