"""The soak and fault suite (`make soak`): many patients, hostile input and failing dependencies."""
