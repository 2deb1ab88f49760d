"""Developer tools for the monorepo: the throwaway RabbitMQ harness, its pytest plugin, codegen."""
