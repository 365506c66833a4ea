"""A simulated marketplace whose sellers behave, and are policed, like real ones."""
