// PLACEHOLDER: replaced by the queue driver.
