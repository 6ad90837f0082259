"""ftsim: a model of how ftrace arbitrates FTRACE_OPS_FL_IPMODIFY and FTRACE_OPS_FL_DIRECT ops."""
__version__ = "0.1.0"
