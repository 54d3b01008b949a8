"""Attacks: objectives (adaptive losses), iterative ℓ∞ attacks, APGD, multi-targeted, cleverhans, corruptions."""
