"""Experiments after Liu, Qiu, Khan, Katz (2025), Linearithmic Clean-up for Vector-Symbolic Key-Value Memory with
Kronecker Rotation Products (NeSy)."""
