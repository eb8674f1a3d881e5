"""The network: its layers (`layers`), the hyperparameters they share (`hyper`), the engine handle
`Network` (`network`), the checks of array arguments (`arrays`) and of the engine's size limits
(`limits`)."""
