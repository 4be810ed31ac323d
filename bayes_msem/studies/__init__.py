"""Monte Carlo studies (:mod:`.study`: simulate → fit → summarise, locally or on Dask) and
simulation-based calibration of the ranks (:mod:`.sbc`).
"""
