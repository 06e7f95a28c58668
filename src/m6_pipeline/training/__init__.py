"""Training M6: Ray Train workers with a ColossalAI Booster, checkpoints, and the planner."""
