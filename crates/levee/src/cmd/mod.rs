pub mod catalog;
pub mod check;
pub mod diff;
pub mod gen;
pub mod graph;
pub mod replay;
pub mod run;
pub mod test;
