// PLACEHOLDER: replaced by the control channel.
