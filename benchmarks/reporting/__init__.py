"""What every scenario's report section shares: number formats, Markdown tables, the plotter.

- :mod:`reporting.text`: labels of the peers, number formats, tables, notes for a scenario
  that did not run, and the ``Section`` each scenario's report module returns;
- :mod:`reporting.plots`: the PNG plots (matplotlib, when installed).
"""
