"""Attacks: objectives (adaptive losses), the ℓ∞/ℓ2 threat model, iterative ℓ∞ attacks
(native or cleverhans backend), APGD, multi-targeted, FAB-T, Square, EAD, DeepFool,
L-BFGS, JSMA, cleverhans wrappers, corruptions."""
