# frozen_string_literal: true

# tasker.rb - Ruby step handlers for tasker (module TaskerCore, also reachable as Tasker):
# handler classes, errors, results, the step context, handler resolution and the worker.
# The native extension (tasker_native.so) is loaded when a worker starts (tasker/native.rb).
require 'json'

require_relative 'tasker/version'
require_relative 'tasker/errors'
require_relative 'tasker/types'
require_relative 'tasker/json_check'
require_relative 'tasker/native'
require_relative 'tasker/logger'
require_relative 'tasker/step_context'
require_relative 'tasker/step_handler'
require_relative 'tasker/registry'
require_relative 'tasker/executor'
require_relative 'tasker/templates'
require_relative 'tasker/worker'

Tasker = TaskerCore unless defined?(Tasker)
