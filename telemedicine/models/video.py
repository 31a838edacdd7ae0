"""Video consultations: rooms, waiting-room state, LiveKit webhook events."""
