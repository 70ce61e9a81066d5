//! Operators' features (issue 17): exclusions (holidays, shutdowns,
//! leave) and the coverage report, on real databases and, end to end, on
//! the real binary against the simulator.

mod exclusions_store;
