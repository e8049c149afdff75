"""The scheduler: dispatch loop over Ray worker actors; it alone changes task and job states."""
