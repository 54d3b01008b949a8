"""Attacks: objectives (adaptive losses), iterative ℓ∞ attacks (native or cleverhans backend), APGD,
multi-targeted, EAD, DeepFool, L-BFGS, JSMA, cleverhans wrappers, corruptions."""
