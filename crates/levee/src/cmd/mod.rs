pub mod catalog;
pub mod check;
pub mod gen;
pub mod graph;
pub mod mutate;
pub mod replay;
pub mod run;
pub mod test;
