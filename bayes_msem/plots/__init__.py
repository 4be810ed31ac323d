"""Figures drawn from the parameter table and arrays of estimates: path diagrams (Graphviz,
:mod:`.diagram`), forest plots and heatmaps (matplotlib, :mod:`.forest`, :mod:`.heatmap`). They know nothing of fits;
:mod:`..results` hands them the numbers.
"""
