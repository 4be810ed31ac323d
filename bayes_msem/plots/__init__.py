"""Figures drawn from the parameter table and arrays of estimates: path diagrams (Graphviz,
:mod:`.diagram`), forest plots, heatmaps and predictive-check figures (matplotlib, :mod:`.forest`,
:mod:`.heatmap`, :mod:`.checks`). They know nothing of fits;
:mod:`..results` hands them the numbers.
"""
