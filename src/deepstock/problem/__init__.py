"""The problem: settings and their families, demand generators, the one simulator (dynamics),
the losses, datasets and the evaluation of any policy on a split.

Nothing is imported here: ``import deepstock.problem.dynamics`` loads what it names only.
"""
