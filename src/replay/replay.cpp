// PLACEHOLDER: replaced by the replay driver.
