//! Integration tests: real recordings from `../shared/data`, fixtures in real dataset
//! layouts, bad input, and the command-line program.

mod bad_input;
mod cli;
mod common;
mod continual;
mod datasets;
mod demo;
mod dv_server;
mod frames;
mod hostile;
mod loader;
mod readers;
mod render;
mod runtime;
mod stream;
mod training;
mod view;
