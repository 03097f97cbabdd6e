"""The engines that run a product's declared checks (Pandera, Great Expectations).

Declarations live in `mesh_core.declare.product` and `mesh_core.declare.expectation`; this
package only executes them, and both engines report `CheckOutcome`s.
"""
