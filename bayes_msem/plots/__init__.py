"""Figures drawn from the parameter table and arrays of estimates: path diagrams (Graphviz,
:mod:`.diagram`) and forest plots (matplotlib, :mod:`.forest`). They know nothing of fits;
:mod:`..results` hands them the numbers.
"""
