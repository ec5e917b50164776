"""TD-MPC2 (REFERENCE): slot implementations, objective, planner and weight map."""
