"""What a domain engineer declares: a data product and everything it is made of.

The product, its Pandera contract and Great Expectations suite (as plain specs), its inputs and what
it relies on in them, its lifecycle, older majors, objectives, cadence, and the baseline rules a
product must meet to load. Nothing here runs a product, stores data or reads the instance; every
other layer builds on these declarations.
"""
