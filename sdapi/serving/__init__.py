"""The serving layer: what each endpoint does between its route and the engine, one module per area."""
