"""Mechanism checks: reproduce, on small models and a CPU, the explanations of why ICL works.

* :mod:`iclkit.mech.hooks` reads (``capture``) and replaces (``patch``) attention patterns,
  pre-softmax scores, attention outputs and residual streams of a Hugging Face causal LM (or of
  the toy transformer) by stable names.
* :mod:`iclkit.mech.toy` is a small configurable transformer for synthetic tasks;
  :mod:`iclkit.mech.tabular_pfn` a prior-fitted network for small tables.
* One module per check (``softmax_knn``, ``lsa_gd``, ``momentum``, ``induction``,
  ``function_class``, ``icl_vs_ft``, ``tabular_icl``, ``label_anchors``), each with a
  ``run(fast=...)`` function returning a :class:`iclkit.mech.report.CheckReport`;
  ``iclkit mech NAME`` runs them from the shell.

Importing this package imports nothing heavy; the check modules need the ``local`` extra
(torch) and matplotlib.
"""
