"""From-scratch NumPy implementations: the reference the book derives and the assignments ask for."""
