# frozen_string_literal: true

# native.rb - finding and loading the extension tasker_native.so (TaskerCore::Native),
# built by CMake into <build>/bindings/ruby/lib/.
#
# Where it is looked for, first match wins: $TASKER_RUBY_NATIVE (the .so, or its directory;
# set by the build tree's bin/tasker-ruby-worker), then `require 'tasker_native'` on the
# load path (ruby -I <build>/bindings/ruby/lib), then the default build directory of this
# source tree (build/bindings/ruby/lib, what `make build` makes).
module TaskerCore
  module Native
    # Raised by the extension (the runtime could not start, a step used after it was handed
    # back). Defined here too so that rescue clauses work before the extension is loaded.
    class Error < StandardError; end

    DEFAULT_BUILD_PATH = File.expand_path('../../../../build/bindings/ruby/lib/tasker_native.so', __dir__)

    def self.loaded?
      const_defined?(:Worker, false)
    end

    # Load the extension once; raises LoadError saying where it looked.
    def self.load!
      return true if loaded?

      env = ENV.fetch('TASKER_RUBY_NATIVE', '')
      if !env.empty?
        path = File.directory?(env) ? File.join(env, 'tasker_native.so') : env
        raise LoadError, "TASKER_RUBY_NATIVE=#{env}: no file #{path}" unless File.file?(path)

        require File.expand_path(path)
      else
        begin
          require 'tasker_native'
        rescue LoadError
          unless File.file?(DEFAULT_BUILD_PATH)
            raise LoadError, 'cannot find tasker_native.so: build it (`make build`, or cmake --build <dir>) ' \
                             'and set TASKER_RUBY_NATIVE=<dir>/bindings/ruby/lib/tasker_native.so'
          end

          require DEFAULT_BUILD_PATH
        end
      end
      true
    end
  end
end
