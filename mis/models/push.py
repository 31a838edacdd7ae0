"""MIS models: outbound pushes of portal appointments."""
