// PLACEHOLDER: replaced by the rules compiler.
